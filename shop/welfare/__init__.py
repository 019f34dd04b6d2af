"""Union welfare funds (工会福利): a unit's fund, topped up by transfer, granted to its members to spend on the
village's produce before the grants expire."""
