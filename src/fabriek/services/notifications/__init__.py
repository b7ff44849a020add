"""Notifications: messages to people, kept in the store and listed in the portal and the API
(`inbox`), and e-mailed at once or in a daily digest (`mail`)."""
