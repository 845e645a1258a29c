"""Pure OCI/Docker data: digests, references, image configs, manifests, runtime spec."""
