"""Pictures as the organizers read them: image files, PNG headers, MATLAB's bicubic resize, and the input policy for
folders other people made."""
