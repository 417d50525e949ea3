"""Conversion of the Keras models to full-integer TFLite, with the checks that gate it."""
