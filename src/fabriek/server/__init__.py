"""The server's entry points: serve, migrate, load data, simulate; and the application
they serve (`app.build_app`)."""
