"""The identity routes: who am I and my API tokens, users, organisations, projects."""
