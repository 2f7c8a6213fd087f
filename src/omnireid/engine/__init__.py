"""omnireid.engine"""
