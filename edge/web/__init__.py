"""The installer's page: live view, status, events and admin actions, served by the gate process.

Standard library only (``http.server`` on threads).  :mod:`.tokens` holds the per-device secret,
:mod:`.auth` the logins, roles and rate limit, :mod:`.live` the frames the gate hands over while
someone watches, :mod:`.server` the HTTP routes; the page itself is ``static/``.
"""

from maskgate.edge.web.server import WebServer

__all__ = ["WebServer"]
