"""A local web page for runs (``jaxnst serve``): ``runs`` (the queue, no web library) and ``app``
(its HTTP side, Starlette: ``pip install "jaxnst[web]"``)."""
