"""Who is who: organisations and the kinds the access rules distinguish, people, projects
and memberships, personal API tokens, and a person as an OpenID Connect provider vouches
for them. Who may do what (roles, the principal) is `fabriek.domain.roles`, which every
capability shares."""
