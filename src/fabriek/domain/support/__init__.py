"""The support and service centre's rules and shapes: tickets, where they go and what their
service levels promise, attachments, the e-mail that carries a ticket's conversation, a
desk's monthly report, the expertise network and its matching, and the knowledge base with
its Dutch stemming.

Pure: no I/O and no clock reads. Every moment comes in as an argument, so the service-level
clocks are tested over years of working days and holidays without waiting for any of them.
"""
