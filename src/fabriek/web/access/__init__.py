"""The portal's access pages: applying to calls and reviewing (`proposals`), deciding
(`decisions`), and their forms read into the service's drafts (`forms`)."""
