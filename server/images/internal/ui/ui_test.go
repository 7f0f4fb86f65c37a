package ui

import (
	"image"
	"image/color"
	"testing"
)

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 812: "812 B", 1024: "1.0 KB", 12595: "12.2 KB", 12 << 20: "12.0 MB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTextDrawsInsideItsBox(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 200, 40))
	end := Text(img, 10, 25, "Hello", color.White)
	if end != 10+Width("Hello") || end != 45 {
		t.Fatalf("Text ended at %d", end)
	}
	lit := 0
	for y := 0; y < 40; y++ {
		for x := 0; x < 200; x++ {
			if img.RGBAAt(x, y).R != 0 {
				lit++
				if x < 10 || x > end+1 || y > 25+4 || y < 25-Ascent-1 {
					t.Fatalf("pixel (%d,%d) lit outside the text box", x, y)
				}
			}
		}
	}
	if lit < 30 {
		t.Fatalf("only %d pixels lit", lit)
	}
	big := image.NewRGBA(image.Rect(0, 0, 200, 40))
	if end := BigText(big, 0, 30, 2, "Hi", color.RGBA{255, 255, 255, 255}); end != 28 {
		t.Fatalf("BigText ended at %d", end)
	}
	blit := 0
	for _, p := range big.Pix {
		if p == 255 {
			blit++
		}
	}
	if blit == 0 || big.RGBAAt(0, 39).R != 0 {
		t.Fatal("BigText drew nothing or below its line")
	}
}
