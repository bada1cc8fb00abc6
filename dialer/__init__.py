"""Batch outbound dialer for AI voice agents on LiveKit SIP."""
