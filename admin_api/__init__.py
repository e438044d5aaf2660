"""HTTP: the guardians' pages (registration, change and leave) now, the staff API later.

``admin_api.app.create_app(site)`` builds the FastAPI application from routers, one module per
page family (``admin_api.pages``); ``admin_api.server.HttpServer`` serves it with uvicorn in the
caller's event loop (``mamoru serve``). Nothing here writes SQL: the pages call engine.people
and engine.queue.
"""
