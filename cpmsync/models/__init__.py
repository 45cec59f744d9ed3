"""The daemon's data: SQLModel cache tables (`tables`, `schema`) and MQTT payloads (`events`).

Import the submodules directly; this package stays import-light so `cpmsync --help` is fast.
"""
