"""Embedding models past the torch ceiling: ONNX Runtime and OpenVINO exports, quantized where
the quality gate allows, and the runtime that embeds with them."""
