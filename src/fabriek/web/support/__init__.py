"""The portal's support pages: tickets and their conversation (`tickets`), and the AI hubs'
desk (`hub_desk`)."""
