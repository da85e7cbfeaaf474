"""pytest, mirroring the rooms; real services are started by fixtures (see ``testing``)."""
