"""omnireid.inference"""
