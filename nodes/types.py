"""Custom type names: public API, prefixed, never renamed."""

MOTION_MODULE = "MC_MOTION_MODULE"
FREE_INIT = "MC_FREE_INIT"  # FreeInit Options' settings (a dict)
SPARSECTRL = "MC_SPARSECTRL"  # Load SparseCtrl's model (a comfy ControlNet subclass)
CATEGORY = "motion_core"
