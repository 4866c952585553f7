"""What a sweep will cost before it runs: rates measured on this machine, estimates and the plan's table."""
