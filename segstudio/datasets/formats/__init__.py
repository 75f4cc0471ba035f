"""datasets/formats"""
