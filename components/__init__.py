"""The steps of llm-workflows as plain typed Python, and what they share.

Nothing here imports kfp, hera or another room; heavy libraries load inside the functions that
need them.
"""
