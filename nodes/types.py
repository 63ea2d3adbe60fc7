"""Custom type names: public API, prefixed, never renamed."""

MOTION_MODULE = "MC_MOTION_MODULE"
CATEGORY = "motion_core"
