"""The demo factory: its sites, organisations, projects and people with known tokens
(`seed`), and a year of their use for the dashboards (`history`)."""
