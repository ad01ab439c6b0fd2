"""Preview environments: naming, URLs, lifetimes, routing of preview traffic, PR feedback."""
