"""The root filesystem: an in-memory tree, package installation, the installed database and the post-install steps."""
