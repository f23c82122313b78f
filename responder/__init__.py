"""dynipsec responder: an IKEv1 responder for dynamic IPsec subscribers."""

__version__ = "0.1.0"
