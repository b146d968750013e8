"""`.tflite` export: the integer engine's model as TFLite int8 operators, checked in LiteRT and TFLite Micro."""
