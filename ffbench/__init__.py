"""ffbench: what Forward-Forward training costs against backprop, measured and explained."""

__version__ = "0.1.0"
