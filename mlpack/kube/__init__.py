"""kube stage."""
