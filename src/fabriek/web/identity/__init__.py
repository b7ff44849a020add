"""The portal's identity pages: signing in with an API token, out, and making API tokens
(`tokens`); signing in through an institution's OpenID Connect provider (`oidc`)."""
