#!/usr/bin/env bash
# make-test-videos.sh regenerates the MPEG-1 test videos in
# server/images/video/media/ from the pictures of Debian's gnome-backgrounds
# package (apt-get install -y --no-install-recommends ffmpeg gnome-backgrounds).
#
# The files are committed because ffmpeg's output is not bit-reproducible
# across versions; the decoder test (shared/mpeg1) compares against whatever
# the installed ffmpeg decodes from the committed files, not against these
# commands. Usage: scripts/make-test-videos.sh [outdir]
set -euo pipefail

out=${1:-$(dirname "$0")/../server/images/video/media}
bg=${BACKGROUNDS:-/usr/share/backgrounds/gnome}
mkdir -p "$out"
command -v ffmpeg >/dev/null || { echo "ffmpeg is needed" >&2; exit 1; }
for f in wood-l adwaita-l licorice-d pixels-l; do
  [ -f "$bg/$f.webp" ] || { echo "missing $bg/$f.webp (apt-get install gnome-backgrounds)" >&2; exit 1; }
done

ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# slideshow W H FPS BITRATE OUT: 20 s of three pictures, each 7 s of
# Ken Burns motion (zoom in, pan right, zoom out), joined by 1 s crossfades.
slideshow() {
  local w=$1 h=$2 fps=$3 rate=$4 dst=$5
  local n=$((fps * 8)) # frames per segment, 8 s (the crossfades eat 2 s in total)
  ff -i "$bg/wood-l.webp" -i "$bg/adwaita-l.webp" -i "$bg/licorice-d.webp" -filter_complex "
    [0:v]scale=1920:1920,crop=1920:1080,zoompan=z='1+0.4*on/$n':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=$n:s=${w}x${h}:fps=$fps,setsar=1[a];
    [1:v]scale=1920:1920,crop=1920:1080:0:300,zoompan=z=1.5:x='(iw-iw/zoom)*on/$n':y='(ih-ih/zoom)/3':d=$n:s=${w}x${h}:fps=$fps,setsar=1[b];
    [2:v]scale=1920:1920,crop=1920:1080,zoompan=z='1.6-0.6*on/$n':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=$n:s=${w}x${h}:fps=$fps,setsar=1[c];
    [a][b]xfade=transition=fade:duration=1:offset=7[ab];
    [ab][c]xfade=transition=fade:duration=1:offset=14,format=yuv420p[v]" \
    -map '[v]' -t 20 -c:v mpeg1video -b:v "$rate" -maxrate "$rate" -bufsize 2M -bf 2 -g 15 -f mpeg "$dst"
}

slideshow 426 240 25 400k "$out/photos-240p.mpg"
slideshow 640 360 30 800k "$out/photos-360p.mpg"
slideshow 854 480 25 1500k "$out/photos-480p.mpg"

# A synthetic clip as an elementary stream, with loaded (non-default)
# quantiser matrices so that the decoder's matrix loading is exercised.
intra="8,12,14,16,18,20,22,24,12,14,16,18,20,22,24,26,14,16,18,20,22,24,26,28,16,18,20,22,24,26,28,30,18,20,22,24,26,28,30,32,20,22,24,26,28,30,32,34,22,24,26,28,30,32,34,36,24,26,28,30,32,34,36,38"
inter="16,17,18,19,20,21,22,23,17,18,19,20,21,22,23,24,18,19,20,21,22,23,24,25,19,20,21,22,23,24,26,27,20,21,22,23,25,26,27,28,21,22,23,24,26,27,28,30,22,23,24,26,27,28,30,31,23,24,25,27,28,30,31,33"
ff -f lavfi -i "testsrc2=size=480x272:rate=30:duration=20" -pix_fmt yuv420p \
  -c:v mpeg1video -b:v 600k -maxrate 600k -bufsize 1M -bf 2 -g 15 \
  -intra_matrix "$intra" -inter_matrix "$inter" -f mpeg1video "$out/testsrc2-272p.m1v"

ls -l "$out"
