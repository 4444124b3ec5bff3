from .cpfpn import CPFPN

__all__ = ['CPFPN']
