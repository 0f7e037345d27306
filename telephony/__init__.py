"""The bridge's media workers, their pool and the SIP front."""
