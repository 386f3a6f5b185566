"""The candidate gateway's HTTP surface (probes, /tools/invoke, hooks, OpenAI-compatible endpoints, headers).

``gateway.http.routes.add_routes(app)`` wires everything into ``gateway.app.make_app``.
"""
