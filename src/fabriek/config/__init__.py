"""Configuration the package ships: the access tracks."""
