"""Feature extraction: generic CNN backbones (`backbones`, `generic`), dlib faces
(`faces`), weights lookup (`weights`) and the incremental runs that fill the feature
store (`extract`). torch, torchvision and dlib are imported only inside functions."""
