"""omnireid.viz"""
