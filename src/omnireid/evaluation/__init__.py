"""omnireid.evaluation"""
