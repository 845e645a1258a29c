"""Images: list/inspect/tag/rmi/import/load/save, registries (pull/push/login), bootstrap,
analysis, manifest inspect (the rooms behind the image verbs and the /images routes)."""
