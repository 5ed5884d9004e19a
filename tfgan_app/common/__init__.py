"""Small shared helpers with no project imports: command-line parsing (cli), the frozen training
configuration (config), image grids and PNGs, plots, the TF-GAN import shim, the workdir lock, the
SIGTERM/SIGINT stop, atomic publishing.
"""
