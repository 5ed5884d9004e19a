"""Model architectures: subclassed Keras generators and discriminators, their layers, and the
registry (`registry`) that builds them by --architecture name. The architectures never import the
registry."""
