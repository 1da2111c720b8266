"""Follow a request through the stack from the nodes' own logs (runbooks/trace.py).

`parse`: pure parsers, one per log format (proxy access log, Apache access log, the app's
trace line); `paths`: which log each tier writes; `join`: pure, the lines of one request id
put together into its path; `logs`: reading the logs of the selected nodes over SSH;
`send`: requests through the VIP; `follow`: live tails of the access logs, in time order.
"""
