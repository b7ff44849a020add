"""The site agent (`fabriek site-agent`): runs at a site, pulls the site's desired state from
the control plane with its own site token, applies it with the site's own tools (POSIX
accounts, SSH trust, `sacctmgr`), and reports what it did and what it found changed by hand.
"""
