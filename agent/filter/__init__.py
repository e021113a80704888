"""The network filter: DNS filtering loop, list compiler, nftables rules."""
