"""Publishing what we serve back to the API: the addresses of the load balancers
(addresses.py), which objects want which status (desired.py), and the one writer that
puts it there while it holds the Lease (writer.py, publisher.py; election in
election.py and leases.py).

Pure where it can be: addresses.py and desired.py take plain objects and settings and
return values; only writer.py and publisher.py talk to the API server.
"""
