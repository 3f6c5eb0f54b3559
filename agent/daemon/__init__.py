"""The daemon: supervisor, components, control socket and the ``Agent`` that composes them."""
