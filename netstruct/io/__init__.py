"""Files: lossless native save/load, torch model files, GraphML/GEXF/CSV for papers."""
