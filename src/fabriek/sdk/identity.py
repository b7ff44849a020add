"""Who is who: the signed-in user and their tokens, users, organisations, projects and
their members."""

from __future__ import annotations

from typing import Any

from fabriek.domain.identity.people import (
    IdentityInfo,
    Membership,
    NewTokenInfo,
    Organisation,
    OrganisationChange,
    OrganisationDraft,
    Project,
    ProjectDraft,
    TokenInfo,
    User,
    UserDraft,
)
from fabriek.sdk.core import Listing, SubClient


class IdentityClient(SubClient):
    """`client.identity`: sign-in and the people of the factory."""

    def whoami(self) -> dict[str, Any]:
        """The signed-in user: name, staff roles and projects."""
        result: dict[str, Any] = self._core.get("/whoami")
        return result

    def create_token(self, name: str = "cli", expires_in_days: int | None = None) -> NewTokenInfo:
        """A new API token for oneself; its secret is shown this once."""
        body: dict[str, Any] = {"name": name}
        if expires_in_days:
            body["expires_in_days"] = expires_in_days
        return NewTokenInfo.model_validate(self._core.post("/tokens", body))

    def tokens(self) -> list[TokenInfo]:
        """One's own tokens (never their secrets)."""
        return self._core.items(TokenInfo, "/tokens")

    def revoke_token(self, key: str) -> TokenInfo:
        """Revoke one of one's tokens by its key."""
        return TokenInfo.model_validate(self._core.request("DELETE", f"/tokens/{key}").json())

    def identities(self) -> list[IdentityInfo]:
        """One's federated identities (linking another takes a browser: the portal's
        /account/identities)."""
        return [IdentityInfo.model_validate(i) for i in self._core.get("/identities")]

    def unlink_identity(self, identity_id: int) -> None:
        """Unlink one of one's identities; the tokens that came from it are revoked."""
        self._core.request("DELETE", f"/identities/{identity_id}")

    # --- organisations ------------------------------------------------------------------

    def organisations(
        self, limit: int = 100, offset: int = 0, **filters: Any
    ) -> Listing[Organisation]:
        """Organisations the factory serves; filters: province, hub, kind."""
        params = {"limit": limit, "offset": offset, **filters}
        return self._core.listing(Organisation, "/organisations", params)

    def organisation(self, organisation_id: int) -> Organisation:
        """One organisation by number."""
        return Organisation.model_validate(self._core.get(f"/organisations/{organisation_id}"))

    def create_organisation(self, draft: OrganisationDraft) -> Organisation:
        """Add an organisation (admins)."""
        return Organisation.model_validate(self._core.post("/organisations", draft))

    def update_organisation(self, organisation_id: int, change: OrganisationChange) -> Organisation:
        """Change an organisation (admins)."""
        answer = self._core.send("PATCH", f"/organisations/{organisation_id}", change)
        return Organisation.model_validate(answer)

    # --- users --------------------------------------------------------------------------

    def users(self, limit: int = 100, offset: int = 0, q: str | None = None) -> Listing[User]:
        """Users, optionally those whose name or username contains `q`."""
        return self._core.listing(User, "/users", {"limit": limit, "offset": offset, "q": q})

    def user(self, ref: str) -> User:
        """One user by username or number."""
        return User.model_validate(self._core.get(f"/users/{ref}"))

    def create_user(self, draft: UserDraft) -> User:
        """Add a user (admins)."""
        return User.model_validate(self._core.post("/users", draft))

    # --- projects -----------------------------------------------------------------------

    def projects(self, limit: int = 100, offset: int = 0, **filters: Any) -> Listing[Project]:
        """The projects one can see; filters: name, organisation."""
        params = {"limit": limit, "offset": offset, **filters}
        return self._core.listing(Project, "/projects", params)

    def project(self, ref: str) -> Project:
        """One project by name or number."""
        return Project.model_validate(self._core.get(f"/projects/{ref}"))

    def create_project(self, draft: ProjectDraft) -> Project:
        """Add a project (admins)."""
        return Project.model_validate(self._core.post("/projects", draft))

    def members(self, project: str) -> list[Membership]:
        """A project's members and their roles."""
        return self._core.items(Membership, f"/projects/{project}/members")

    def add_member(self, project: str, username: str, role: str = "member") -> Membership:
        """Add a user to a project in a role."""
        body = {"username": username, "role": role}
        return Membership.model_validate(self._core.post(f"/projects/{project}/members", body))

    def remove_member(self, project: str, username: str) -> None:
        """Take a user out of a project."""
        self._core.request("DELETE", f"/projects/{project}/members/{username}")

    # --- suspensions --------------------------------------------------------------------

    def set_suspension(self, kind: str, ref: str, reason: str | None) -> dict[str, Any]:
        """Suspend (`reason` given) or lift the suspension of a user, project or allocation
        (`kind`), by name or number (admins)."""
        path = f"/{kind}s/{ref}/suspension"
        if reason is None:
            answer: dict[str, Any] = self._core.request("DELETE", path).json()
        else:
            answer = self._core.request("PUT", path, json={"reason": reason}).json()
        return answer
