"""The review page (CONTRACT §7), served by the service at ``[ui] listen``: Flask for the page
(routing, forms, Jinja2 templates that escape every value), waitress to serve it (a production
WSGI server in pure Python, threaded, that runs inside the service process)."""
