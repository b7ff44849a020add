"""Who is who: people and their staff roles, organisations, projects and their members,
personal API tokens and the principal a caller stands for, and signing in through an
OpenID Connect provider."""
