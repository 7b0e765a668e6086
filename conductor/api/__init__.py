"""clone-api: the Glance v2 tasks API with ``type: clone``.

``app`` routes and answers, ``tasks`` is the controller, ``schemas`` holds
the JSON schemas served to (and enforced on) clients, ``policies`` the
oslo.policy defaults, ``middleware`` the paste filters, ``wsgi`` the entry
point gunicorn serves, ``glance_filter`` the filter that mounts clone tasks
inside a glance-api pipeline.
"""
