"""The numbers from result frames that every reader of results shares: the verdict (FF
against backprop, per phase and optimizer), the fits of memory and time against depth, how a
frame is described. Pure pandas; no torch, no drawing, no text beyond labels."""
