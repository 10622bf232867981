"""The trio runtime: stacks (direct and kernel), flows and listeners."""

from __future__ import annotations

from .base import Flow, FlowInfo, FlowSocket, Listener, ListenerSocket, Stack
from .flow import DirectFlow
from .kernel import KernelFlow, KernelListener, KernelStack, open_kernel_stack
from .listener import DirectListener
from .stack import DirectStack, open_stack

__all__ = [
    "DirectFlow",
    "DirectListener",
    "DirectStack",
    "Flow",
    "FlowInfo",
    "FlowSocket",
    "KernelFlow",
    "KernelListener",
    "KernelStack",
    "Listener",
    "ListenerSocket",
    "Stack",
    "open_kernel_stack",
    "open_stack",
]
