"""OCI Distribution registry client: auth, manifests, blobs (download and upload).

``client.py`` speaks HTTP (urllib3), ``auth.py`` parses challenges and keeps credentials in
Docker's ``config.json``, ``hosts.py`` maps a registry name to its endpoints (mirrors,
insecure registries, CA certificates).  ``transport/registry_source.py`` and
``registry_dest.py`` build the ImageSource / ImageDestination seams on top.
"""
